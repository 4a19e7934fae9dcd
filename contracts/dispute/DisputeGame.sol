// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IInferenceOracle} from "../interfaces/IInferenceOracle.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";
import {IOracleViews} from "../interfaces/IOracleViews.sol";
import {DataChunks} from "../libraries/DataChunks.sol";
import {IIntegerVerifier} from "../verifier/IIntegerVerifier.sol";
import {IDisputeOracle} from "./IDisputeOracle.sol";
import {StateMerkle} from "./StateMerkle.sol";
import {OneStepProver} from "./OneStepProver.sol";
import {StepGasBound} from "./StepGasBound.sol";

/// @title DisputeGame
/// @notice The interactive dispute game of protocol §6 v2, for EXACT models whose one-transaction proof
/// exceeds the per-transaction gas cap. A challenger opens a game against a claim with a bond; the
/// operator posts the state root after the last op (proving the attested output is in it), then the
/// operator posts midpoint state roots and the challenger agrees or disagrees until one step separates an
/// agreed state from a disputed one (a step: an op, a tile of a MatMul or a row block of an elementwise
/// op, as the program's tile plan splits them, fixed by `fixPlan` before the model is registered); a one-step proof (`OneStepProver`) re-executes that step with
/// the verifier's `runOp` (the kernels of a whole-program run), operands proven against the agreed state by
/// Merkle proofs and constants read from the program chunks. Each side has a chess clock; running out of
/// time loses.
/// @dev Every transaction is bounded: moves are O(log) hashing, `open` reads the plan fixed for the program
/// (no decode) and hashes the input, and `step` re-executes one step; `fixPlan` checked that every one of
/// them fits the oracle's cap (`StepGasBound.checkPlan`), and the oracle registers a model over the
/// one-transaction cap only once its program's plan is fixed (`executionGasBound`).
contract DisputeGame {
    enum Phase {
        None,
        Defend, // operator: post the final state and prove the attested output in it
        Bisect, // operator: post the state at the midpoint
        Choose, // challenger: agree or disagree with the midpoint
        Step, // challenger (anyone may): prove the single step between lo and hi
        Resolved
    }

    struct Game {
        uint256 requestId;
        address challenger;
        uint40 lastMove;
        uint40 challengerClock; // seconds left
        address operator;
        uint40 operatorClock;
        uint32 modelId;
        uint32 lo; // agreed state index (states: 0 = input only, k = after k steps)
        uint32 hi; // disputed state index
        Phase phase;
        bool challengerWon;
        uint8 depth; // state tree depth
        uint8 outputWidth;
        uint32 outputId;
        bytes32 outputHash; // the attested output as the oracle's view gives it: bytes24 of its keccak256, zero-padded
        bytes32 rootLo;
        bytes32 rootHi;
        bytes32 rootMid;
        bytes32 planHash; // keccak256 of the tile plan (packed), from `plans` at open
    }

    /// @notice A program's checked tile plan (`fixPlan`), by `planKey`.
    struct Plan {
        bytes32 hash; // keccak256 of the packed plan; zero: none fixed
        uint64 execGas; // the verifier's `executionGasBound`
        uint32 steps;
        uint24 inputLength;
        uint24 outputLength;
        uint32 inputId;
        uint32 outputId;
        uint8 inputWidth;
        uint8 outputWidth;
        uint8 depth;
    }

    IDisputeOracle public immutable ORACLE;
    IIntegerVerifier public immutable VERIFIER;
    /// @notice Wei a challenger posts to open a game: the winner's (the honest operator's gas is paid from it).
    uint256 public immutable GAME_BOND;
    /// @notice Seconds each side has in total for its moves (chess clock).
    uint256 public immutable CLOCK;

    /// @notice The tile plan and the bound of every game transaction.
    StepGasBound public immutable STEP_GAS_BOUND;
    /// @notice Re-executes one step (an op or a tile) on the agreed state.
    OneStepProver public immutable PROVER;

    uint256 public gameCount;
    mapping(uint256 gameId => Game) private _games;
    mapping(address account => uint256) public credits;
    /// @notice Open games by request.
    mapping(uint256 requestId => uint256) public openGames;
    uint256 private _lock = 1;
    /// @notice Checked tile plans, by `planKey` of the program.
    mapping(bytes32 key => Plan) public plans;

    event PlanFixed(bytes32 indexed key, bytes32 planHash, uint256 steps, uint256 stepGasBound);
    event GameOpened(
        uint256 indexed gameId, uint256 indexed requestId, address indexed challenger, address operator, uint256 numSteps, bytes32 root0
    );
    event Defended(uint256 indexed gameId, bytes32 finalRoot);
    event MidpointPosted(uint256 indexed gameId, uint256 index, bytes32 root);
    event MidpointChosen(uint256 indexed gameId, bool agree, uint256 lo, uint256 hi);
    event StepProven(uint256 indexed gameId, uint256 stepIndex, bytes32 postRoot, bool challengerWon);
    event GameResolved(uint256 indexed gameId, uint256 indexed requestId, bool challengerWon, bool byTimeout);
    event CreditsWithdrawn(address indexed account, uint256 amount);

    error WrongBond(uint256 expected, uint256 sent);
    error ClaimNotDisputable(uint256 requestId);
    error UnknownGame(uint256 gameId);
    error WrongPhase(uint256 gameId, Phase phase);
    error NotYourMove(address caller);
    error ClockExpired(uint256 gameId);
    error ClockRunning(uint256 gameId);
    error OutputNotAttested(uint256 gameId);
    error RootMismatch(uint256 tensor);
    error PlanMismatch(uint256 gameId);
    /// @notice The program (`planKey`) is over the one-transaction cap and its plan is not fixed: `fixPlan`.
    error PlanNotFixed(bytes32 key);
    /// @notice A checked plan's figures do not fit their fields (32-bit steps and ids, 64-bit gas, 24-bit
    /// lengths): refused rather than truncated.
    error PlanOutOfRange();
    error NoCredits();
    error TransferFailed();
    error Reentrancy();
    /// @notice The oracle's unbonding period does not outlast its challenge window plus the longest game
    /// (two full clocks): an operator could unbond before a game opened at the window's end is over.
    error UnbondingTooShort(uint256 unbondingPeriod, uint256 windowPlusLongestGame);

    modifier nonReentrant() {
        if (_lock != 1) revert Reentrancy();
        _lock = 2;
        _;
        _lock = 1;
    }

    constructor(
        IDisputeOracle oracle,
        IIntegerVerifier verifier,
        uint256 gameBond,
        uint256 clock,
        StepGasBound stepGasBound,
        OneStepProver prover
    ) {
        // The longest game: a game opened at the window's last second, each side using its full clock.
        uint256 needed = oracle.CHALLENGE_WINDOW() + 2 * clock;
        uint256 unbonding = IInferenceOracle(address(oracle)).UNBONDING_PERIOD();
        if (unbonding < needed) revert UnbondingTooShort(unbonding, needed);
        ORACLE = oracle;
        VERIFIER = verifier;
        GAME_BOND = gameBond;
        CLOCK = clock;
        STEP_GAS_BOUND = stepGasBound;
        PROVER = prover;
    }

    // ---------------------------------------------------------------- plans

    /// @notice Fixes the tile plan of the program in `chunks` (anyone may; the plan is a function of the
    /// program, computed off-chain by `oracle.profile.tiles.plan`): `StepGasBound.checkPlan` verifies it
    /// (the plan's rule, every game transaction within the oracle's cap) and the game keeps its hash and
    /// what `open` needs, so no transaction searches or replays the plan again. Once fixed, a program's plan
    /// never changes (a second call is a no-op), so games on a registered model always use the same one.
    function fixPlan(address[] calldata chunks, uint256[] calldata tiles) external returns (bytes32 key) {
        key = planKey(chunks);
        if (plans[key].hash != bytes32(0)) return key;
        StepGasBound.Checked memory k = STEP_GAS_BOUND.checkPlan(chunks, ORACLE.TX_GAS_CAP(), tiles);
        // Never truncated: what the registry compares (I/O lengths) and what `open` uses must be exact.
        if (
            k.steps > type(uint32).max || k.execGas > type(uint64).max || k.inputLength > type(uint24).max
                || k.outputLength > type(uint24).max || k.inputId > type(uint32).max || k.outputId > type(uint32).max
                || k.depth > type(uint8).max
        ) revert PlanOutOfRange();
        bytes32 hash = keccak256(abi.encodePacked(tiles));
        plans[key] = Plan(hash, uint64(k.execGas), uint32(k.steps), uint24(k.inputLength), uint24(k.outputLength),
            uint32(k.inputId), uint32(k.outputId), uint8(k.inputWidth), uint8(k.outputWidth), uint8(k.depth));
        emit PlanFixed(key, hash, k.steps, k.stepGas);
    }

    /// @notice The key of the program in `chunks` in `plans`: its bytes' keccak256 and its chunk count
    /// (the bounds depend on both).
    function planKey(address[] memory chunks) public view returns (bytes32) {
        return keccak256(abi.encode(DataChunks.hash(chunks), chunks.length));
    }

    // ---------------------------------------------------------------- moves

    /// @notice Opens a game against `requestId`'s claim (`input` is the request's input), with `GAME_BOND`.
    function open(uint256 requestId, bytes calldata input) external payable nonReentrant returns (uint256 gameId) {
        if (msg.value != GAME_BOND) revert WrongBond(GAME_BOND, msg.value);
        (address operator, uint32 modelId, bytes32 outputHash) = _checkClaim(requestId, input);
        // Several games may run against one claim; the oracle holds the claim while any is open.
        if (openGames[requestId]++ == 0) ORACLE.setDisputed(requestId, true, address(0));
        // The plan fixed before registration (a game-provable model has one: `executionGasBound`).
        address[] memory chunks = IOracleViews(address(ORACLE)).programChunks(modelId);
        bytes32 key = planKey(chunks);
        Plan memory pl = plans[key];
        if (pl.hash == bytes32(0)) revert PlanNotFixed(key);
        bytes32 root0 = STEP_GAS_BOUND.inputRoot(input, pl.inputWidth, pl.inputId, pl.depth);
        gameId = ++gameCount;
        Game storage g = _games[gameId];
        g.requestId = requestId;
        g.challenger = msg.sender;
        g.lastMove = uint40(block.timestamp);
        g.challengerClock = uint40(CLOCK);
        g.operator = operator;
        g.operatorClock = uint40(CLOCK);
        g.modelId = modelId;
        g.hi = pl.steps;
        g.phase = Phase.Defend;
        g.depth = pl.depth;
        g.outputWidth = pl.outputWidth;
        g.outputId = pl.outputId;
        g.outputHash = outputHash;
        g.rootLo = root0;
        g.planHash = pl.hash;
        emit GameOpened(gameId, requestId, msg.sender, operator, pl.steps, root0);
    }

    /// @notice Operator: the state root after the last op, with the output tensor (8 bytes per element)
    /// and its Merkle proof in that state; the output must encode to the attested output.
    function defend(uint256 gameId, bytes32 finalRoot, bytes calldata outputValues, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Game storage g = _move(gameId, Phase.Defend);
        // The oracle keeps the first 24 bytes of an attested output's keccak256 (zero-padded in its view).
        if (
            outputValues.length % 8 != 0
                || bytes24(STEP_GAS_BOUND.outputHash(outputValues, g.outputWidth)) != bytes24(g.outputHash)
        ) {
            revert OutputNotAttested(gameId);
        }
        if (StateMerkle.rootOf(StateMerkle.tensorHash(outputValues), g.outputId, proof, g.depth) != finalRoot) {
            revert RootMismatch(0);
        }
        g.rootHi = finalRoot;
        g.phase = g.hi - g.lo == 1 ? Phase.Step : Phase.Bisect;
        emit Defended(gameId, finalRoot);
    }

    /// @notice Operator: the state root after step `(lo + hi) / 2`.
    function bisect(uint256 gameId, bytes32 midRoot) external nonReentrant {
        Game storage g = _move(gameId, Phase.Bisect);
        g.rootMid = midRoot;
        g.phase = Phase.Choose;
        emit MidpointPosted(gameId, (uint256(g.lo) + g.hi) / 2, midRoot);
    }

    /// @notice Challenger: `agree` with the midpoint state (the fault is after it) or not (before it).
    function choose(uint256 gameId, bool agree) external nonReentrant {
        Game storage g = _move(gameId, Phase.Choose);
        uint32 mid = uint32((uint256(g.lo) + g.hi) / 2);
        if (agree) {
            (g.lo, g.rootLo) = (mid, g.rootMid);
        } else {
            (g.hi, g.rootHi) = (mid, g.rootMid);
        }
        g.phase = g.hi - g.lo == 1 ? Phase.Step : Phase.Bisect;
        emit MidpointChosen(gameId, agree, g.lo, g.hi);
    }

    /// @notice The one-step proof, by anyone while the challenger's clock runs: re-executes step `lo` on the
    /// agreed state `rootLo` (see `OneStepProver.StepProof`). If the resulting state is not `rootHi`, the challenger wins.
    function step(uint256 gameId, OneStepProver.StepProof calldata proof) external nonReentrant {
        Game storage g = _games[gameId];
        if (g.phase != Phase.Step) revert WrongPhase(gameId, g.phase);
        if (block.timestamp - g.lastMove > g.challengerClock) revert ClockExpired(gameId);
        if (keccak256(abi.encodePacked(proof.plan)) != g.planHash) revert PlanMismatch(gameId);
        address[] memory chunks = IOracleViews(address(ORACLE)).programChunks(g.modelId);
        bytes32 post = PROVER.postState(chunks, g.lo, g.rootLo, g.depth, proof);
        bool challengerWon = post != g.rootHi;
        emit StepProven(gameId, g.lo, post, challengerWon);
        _resolve(gameId, g, challengerWon, false);
    }

    /// @notice Ends the game against the side whose clock ran out while it had to move.
    function timeout(uint256 gameId) external nonReentrant {
        Game storage g = _games[gameId];
        Phase phase = g.phase;
        if (phase == Phase.None || phase == Phase.Resolved) revert WrongPhase(gameId, phase);
        bool operatorToMove = phase == Phase.Defend || phase == Phase.Bisect;
        uint256 left = operatorToMove ? g.operatorClock : g.challengerClock;
        if (block.timestamp - g.lastMove <= left) revert ClockRunning(gameId);
        _resolve(gameId, g, operatorToMove, true);
    }

    /// @notice Pays out the caller's credits (game bonds won).
    function withdraw() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert NoCredits();
        credits[msg.sender] = 0;
        emit CreditsWithdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ---------------------------------------------------------------- views

    function getGame(uint256 gameId) external view returns (Game memory) {
        return _games[gameId];
    }

    /// @notice Whose move it is (address(0) once resolved) and the seconds left on its clock.
    function toMove(uint256 gameId) external view returns (address who, uint256 secondsLeft) {
        Game storage g = _games[gameId];
        Phase phase = g.phase;
        if (phase == Phase.None || phase == Phase.Resolved) return (address(0), 0);
        bool operatorToMove = phase == Phase.Defend || phase == Phase.Bisect;
        who = operatorToMove ? g.operator : g.challenger;
        uint256 left = operatorToMove ? g.operatorClock : g.challengerClock;
        // saturating: a node's eth_call may run in a block env older than the last move's block
        uint256 used = block.timestamp > g.lastMove ? block.timestamp - g.lastMove : 0;
        secondsLeft = used >= left ? 0 : left - used;
    }

    /// @notice The oracle's registration check when it has a game: the verifier's `executionGasBound` (kept
    /// by `fixPlan` when the program's plan is fixed), refusing (`PlanNotFixed`) a program whose
    /// one-transaction proof exceeds the oracle's cap (`StepGasBound.proofGasBound`, the oracle's formula)
    /// while its plan is not fixed: a registered game-provable model has every game transaction in the cap.
    function executionGasBound(address[] calldata chunks)
        external
        view
        returns (uint256 gas, uint256 inputLength, uint256 outputLength)
    {
        bytes32 key = planKey(chunks);
        Plan storage pl = plans[key];
        if (pl.hash != bytes32(0)) return (pl.execGas, pl.inputLength, pl.outputLength);
        (gas, inputLength, outputLength) = VERIFIER.executionGasBound(chunks);
        if (STEP_GAS_BOUND.proofGasBound(gas, chunks.length, inputLength, outputLength) > ORACLE.TX_GAS_CAP()) {
            revert PlanNotFixed(key);
        }
    }

    // ---------------------------------------------------------------- internals

    /// @dev Checks it is the caller's move in `phase` and charges the elapsed time to the caller's clock.
    function _move(uint256 gameId, Phase phase) private returns (Game storage g) {
        g = _games[gameId];
        if (g.phase != phase) revert WrongPhase(gameId, g.phase);
        bool operatorMoves = phase == Phase.Defend || phase == Phase.Bisect;
        if (msg.sender != (operatorMoves ? g.operator : g.challenger)) revert NotYourMove(msg.sender);
        uint256 used = block.timestamp - g.lastMove;
        uint256 left = operatorMoves ? g.operatorClock : g.challengerClock;
        if (used > left) revert ClockExpired(gameId);
        if (operatorMoves) g.operatorClock = uint40(left - used);
        else g.challengerClock = uint40(left - used);
        g.lastMove = uint40(block.timestamp);
    }

    /// @dev A game opens like a `challenge`: the claim is submitted and unsettled, its window open
    /// (status Submitted), `input` is the request's, and the model is game-provable (proof over the cap).
    function _checkClaim(uint256 requestId, bytes calldata input)
        private
        view
        returns (address operator, uint32 modelId, bytes32 outputHash)
    {
        IOracleViews oracle = IOracleViews(address(ORACLE));
        IInferenceOracle.RequestView memory r = oracle.getRequest(requestId);
        if (r.status != IInferenceOracle.Status.Submitted) revert ClaimNotDisputable(requestId);
        if (oracle.computeRequestId(uint64(requestId >> 192), input) != requestId) revert ClaimNotDisputable(requestId);
        (uint256 proofGas,) = IModelRegistry(address(ORACLE)).proofGasBound(r.modelId);
        if (proofGas <= ORACLE.TX_GAS_CAP()) revert ClaimNotDisputable(requestId);
        return (r.operator, r.modelId, r.outputHash);
    }

    /// @dev Effects first (the game is over, the winner credited), then the oracle settles the claim.
    function _resolve(uint256 gameId, Game storage g, bool challengerWon, bool byTimeout) private {
        g.phase = Phase.Resolved;
        g.challengerWon = challengerWon;
        credits[challengerWon ? g.challenger : g.operator] += GAME_BOND;
        emit GameResolved(gameId, g.requestId, challengerWon, byTimeout);
        uint256 requestId = g.requestId;
        uint256 left = --openGames[requestId];
        // A won game settles the claim as fraud at once (whatever other games do); a lost one releases
        // the claim only when no other game against it is open.
        if (challengerWon) ORACLE.setDisputed(requestId, false, g.challenger);
        else if (left == 0) ORACLE.setDisputed(requestId, false, address(0));
    }

}
