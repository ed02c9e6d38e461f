// Prints the root CID js-ipfs's UnixFS importer gives a folder, with the settings of
// `ipfs add -r --cid-version=1` (256 KiB chunks, raw leaves, balanced layout of 174 links).
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { MemoryBlockstore } from "blockstore-core/memory";
import { importer } from "ipfs-unixfs-importer";
import { fixedSize } from "ipfs-unixfs-importer/chunker";
import { balanced } from "ipfs-unixfs-importer/layout";

const root = process.argv[2];

async function* entries(folder) {
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* entries(path);
    else yield { path: relative(root, path), content: await readFile(path) };
  }
}

const options = {
  cidVersion: 1,
  rawLeaves: true,
  wrapWithDirectory: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
};
let last;
for await (const entry of importer(entries(root), new MemoryBlockstore(), options)) last = entry;
console.log(last.cid.toString());
