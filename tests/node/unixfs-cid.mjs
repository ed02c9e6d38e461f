// Prints the CID that js-ipfs's UnixFS importer gives each file named on the command line,
// with the settings of `ipfs add --cid-version=1`.
import { readFile } from "node:fs/promises";
import { MemoryBlockstore } from "blockstore-core/memory";
import { importer } from "ipfs-unixfs-importer";
import { KUBO_OPTIONS } from "./kubo-options.mjs";

for (const path of process.argv.slice(2)) {
  const content = await readFile(path);
  for await (const entry of importer([{ content }], new MemoryBlockstore(), KUBO_OPTIONS)) {
    console.log(entry.cid.toString());
  }
}
