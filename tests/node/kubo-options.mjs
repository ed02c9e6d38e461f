// The importer settings that give the CIDs of `ipfs add --cid-version=1` (kubo's defaults):
// 256 KiB chunks as raw leaves, a balanced layout of 174 links a node.
import { fixedSize } from "ipfs-unixfs-importer/chunker";
import { balanced } from "ipfs-unixfs-importer/layout";

export const KUBO_OPTIONS = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
};
