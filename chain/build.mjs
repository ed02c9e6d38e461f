// Rebuilds build/<Contract>.json (ABI, creation and runtime bytecode) from contracts/ with solcjs.
// Usage: cd chain && npm install && npm run build
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import solc from "solc";

const NAMES = ["EntropyArtParamsV2Test", "Multicall3Test"];
// Paris: no PUSH0, so both anvil and py-evm (eth-tester) run the bytecode.
const EVM_VERSION = "paris";

const input = {
  language: "Solidity",
  sources: Object.fromEntries(
    NAMES.map((name) => [`${name}.sol`, { content: readFileSync(`contracts/${name}.sol`, "utf8") }]),
  ),
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(1);
}
mkdirSync("build", { recursive: true });
for (const name of NAMES) {
  const contract = output.contracts[`${name}.sol`][name];
  const artifact = {
    contractName: name,
    compiler: `solc ${solc.version()}`,
    evmVersion: EVM_VERSION,
    abi: contract.abi,
    bytecode: "0x" + contract.evm.bytecode.object,
    deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
  };
  writeFileSync(`build/${name}.json`, JSON.stringify(artifact, null, 2) + "\n");
  console.log(`wrote build/${name}.json (${contract.evm.bytecode.object.length / 2} bytes of bytecode)`);
}
