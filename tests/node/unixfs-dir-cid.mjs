// Prints the root CID js-ipfs's UnixFS importer gives a folder, with the settings of
// `ipfs add -r --cid-version=1` (directories sharded above 256 KiB of links, as kubo does).
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { MemoryBlockstore } from "blockstore-core/memory";
import { importer } from "ipfs-unixfs-importer";
import { KUBO_OPTIONS } from "./kubo-options.mjs";

const root = process.argv[2];

async function* entries(folder) {
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* entries(path);
    else yield { path: relative(root, path), content: await readFile(path) };
  }
}

let last;
for await (const entry of importer(entries(root), new MemoryBlockstore(), { ...KUBO_OPTIONS, wrapWithDirectory: true })) {
  last = entry;
}
console.log(last.cid.toString());
