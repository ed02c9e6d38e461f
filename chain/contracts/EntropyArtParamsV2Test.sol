// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Test double of AleaArt's EntropyArtParamsV2
/// @notice Same read ABI, events and seed → parameters derivation as the deployed contract.
/// Instead of waiting for Pyth Entropy's callback, a test fulfils a token with a random number
/// of its choosing; the seed is then derived exactly as the deployed contract derives it.
contract EntropyArtParamsV2Test {
    struct RenderParams {
        uint8 promptIndex;
        uint8 styleIndex;
        uint8 samplerIndex;
        uint8 aspectIndex;
        uint16 steps;
        uint16 cfg;
        uint32 latentSeed;
        uint16 paletteId;
    }

    event EntropyRequested(uint256 indexed tokenId, uint64 indexed requestId, uint256 feePaid);
    event EntropyFulfilled(uint256 indexed tokenId, bytes32 seed);

    bytes32 public immutable collectionSalt;
    uint256 public nextTokenId = 1;
    uint64 private nextRequestId = 1;
    mapping(uint256 => bytes32) public tokenSeed;
    mapping(uint256 => RenderParams) private renderParams;

    constructor(bytes32 salt) {
        collectionSalt = salt;
    }

    /// @notice Mints the next token id and "requests" its randomness.
    function requestArt() external payable returns (uint256 tokenId) {
        tokenId = nextTokenId++;
        emit EntropyRequested(tokenId, nextRequestId++, msg.value);
    }

    /// @notice Test hook (not in the deployed contract): mints ``count`` tokens in one transaction
    /// and, unless ``randomBase`` is zero, fulfils each with keccak256(randomBase, tokenId).
    function mintBatch(uint256 count, bytes32 randomBase) external returns (uint256 firstTokenId) {
        firstTokenId = nextTokenId;
        for (uint256 i = 0; i < count; i++) {
            uint256 tokenId = nextTokenId++;
            emit EntropyRequested(tokenId, nextRequestId++, 0);
            if (randomBase != bytes32(0)) {
                _fulfill(tokenId, keccak256(abi.encodePacked(randomBase, tokenId)));
            }
        }
    }

    /// @notice Plays Pyth Entropy's callback: stores the token's seed and its parameters.
    function fulfill(uint256 tokenId, bytes32 randomNumber) external {
        _fulfill(tokenId, randomNumber);
    }

    function _fulfill(uint256 tokenId, bytes32 randomNumber) private {
        require(tokenId > 0 && tokenId < nextTokenId, "no such token");
        require(tokenSeed[tokenId] == bytes32(0), "already fulfilled");
        bytes32 seed = keccak256(abi.encodePacked(randomNumber, tokenId, collectionSalt));
        tokenSeed[tokenId] = seed;
        renderParams[tokenId] = deriveParams(seed);
        emit EntropyFulfilled(tokenId, seed);
    }

    function viewRenderParams(uint256 tokenId) external view returns (RenderParams memory) {
        require(tokenSeed[tokenId] != bytes32(0), "not ready");
        return renderParams[tokenId];
    }

    function deriveParams(bytes32 seed) public pure returns (RenderParams memory p) {
        uint256 s0 = uint256(seed);
        uint256 s1 = uint256(keccak256(abi.encodePacked(seed, uint256(1))));
        uint256 s2 = uint256(keccak256(abi.encodePacked(seed, uint256(2))));
        uint256 s3 = uint256(keccak256(abi.encodePacked(seed, uint256(3))));
        p.promptIndex = uint8(s0 % 12);
        p.styleIndex = uint8((s0 >> 40) % 10);
        p.samplerIndex = uint8((s1 >> 96) % 6);
        p.aspectIndex = uint8((s1 >> 160) % 5);
        p.paletteId = uint16((s2 >> 200) % 24);
        p.steps = uint16(18 + (s2 % 47));
        p.cfg = uint16(70 + (s3 % 111));
        p.latentSeed = uint32(s3 % 2 ** 32);
    }

    /// @notice Test hook (not in the deployed contract): overwrite a token's stored parameters,
    /// so tests can check that a mismatch with the seed is reported.
    function tamper(uint256 tokenId, RenderParams calldata p) external {
        renderParams[tokenId] = p;
    }
}
