// Prints the CID that js-ipfs's UnixFS importer gives each file named on the command line,
// with the settings of `ipfs add --cid-version=1` (256 KiB chunks, raw leaves, balanced, 174 links).
import { readFile } from "node:fs/promises";
import { MemoryBlockstore } from "blockstore-core/memory";
import { importer } from "ipfs-unixfs-importer";
import { fixedSize } from "ipfs-unixfs-importer/chunker";
import { balanced } from "ipfs-unixfs-importer/layout";

const options = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
};

for (const path of process.argv.slice(2)) {
  const content = await readFile(path);
  for await (const entry of importer([{ content }], new MemoryBlockstore(), options)) {
    console.log(entry.cid.toString());
  }
}
