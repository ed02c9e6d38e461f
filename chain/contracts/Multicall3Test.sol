// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title The aggregate3 entry point of Multicall3, for tests
/// @notice Same ABI as the Multicall3 deployed at 0xcA11bde05977b3631167028862bE2a173976CA11 on most
/// chains (Arbitrum Sepolia included); tests put this code at that address on anvil.
contract Multicall3Test {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    function aggregate3(Call3[] calldata calls) external payable returns (Result[] memory results) {
        results = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            (bool success, bytes memory returnData) = calls[i].target.call(calls[i].callData);
            require(success || calls[i].allowFailure, "Multicall3: call failed");
            results[i] = Result(success, returnData);
        }
    }
}
