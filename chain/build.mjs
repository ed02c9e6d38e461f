// Rebuilds build/EntropyArtParamsV2Test.json (ABI + bytecode) from contracts/ with solcjs.
// Usage: cd chain && npm install && npm run build
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import solc from "solc";

const NAME = "EntropyArtParamsV2Test";
// Paris: no PUSH0, so both anvil and py-evm (eth-tester) run the bytecode.
const EVM_VERSION = "paris";

const input = {
  language: "Solidity",
  sources: { [`${NAME}.sol`]: { content: readFileSync(`contracts/${NAME}.sol`, "utf8") } },
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(1);
}
const contract = output.contracts[`${NAME}.sol`][NAME];
mkdirSync("build", { recursive: true });
const artifact = {
  contractName: NAME,
  compiler: `solc ${solc.version()}`,
  evmVersion: EVM_VERSION,
  abi: contract.abi,
  bytecode: "0x" + contract.evm.bytecode.object,
};
writeFileSync(`build/${NAME}.json`, JSON.stringify(artifact, null, 2) + "\n");
console.log(`wrote build/${NAME}.json (${contract.evm.bytecode.object.length / 2} bytes of bytecode)`);
