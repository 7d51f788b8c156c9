// Checkpoints: resume bit-exactness at the optimizer level (20 uninterrupted steps vs
// 10 + save + load into fresh objects + 10), atomic writes, and precise load errors.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport

@Suite struct CheckpointTests {
    func tempDir() -> String {
        let d = NSTemporaryDirectory() + "fcn-ckpt-\(UInt64.random(in: 0...UInt64.max))"
        try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// Deterministic fake gradient for step `s` (depends on the current weights, like a real one).
    func fakeGrad(_ p: TrainableTensor, step s: Int, rng: inout FCNRandom) -> Tensor {
        let noise = Tensor.randn(p.value.shape, using: &rng)
        let w = p.value.scalars, nz = noise.scalars
        return Tensor(shape: p.value.shape, scalars: (0..<w.count).map { 0.3 * w[$0] + nz[$0] + Float(s % 3) })
    }

    func makeModel() -> [TrainableTensor] {
        [TrainableTensor(name: "fc.weight", value: .randn([3, 4], seed: 11)), TrainableTensor(name: "fc.bias", value: .randn([3], seed: 12))]
    }

    func makeOptimizer(_ kind: String, _ ps: [TrainableTensor]) -> any Optimizer {
        let groups = ParameterGroup.caffeStyle(ps)
        return kind == "sgd" ? SGD(groups, learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4, nesterov: true)
                             : Adam.adamW(groups, learningRate: 0.01)
    }

    func run(_ ps: [TrainableTensor], _ opt: any Optimizer, _ ema: ExponentialMovingAverage, steps: Range<Int>, rng: inout FCNRandom) {
        let schedule = LinearWarmup(PolyLR(base: 0.05, maxSteps: 20), warmupSteps: 4)
        for s in steps {
            for p in ps { setFakeGrad(p, fakeGrad(p, step: s, rng: &rng)) }
            clipGradNorm(ps, maxNorm: 5)
            opt.learningRate = schedule.lr(at: s)
            opt.step()
            opt.zeroGrad()
            ema.update(ps, numUpdates: s)
        }
    }

    @Test(arguments: ["sgd", "adamw"])
    func resumeIsBitExact(_ kind: String) throws {
        // Uninterrupted.
        let a = makeModel(); let optA = makeOptimizer(kind, a); let emaA = ExponentialMovingAverage(a, decay: 0.99)
        var rngA = FCNRandom(seed: 42)
        run(a, optA, emaA, steps: 0..<20, rng: &rngA)

        // 10 steps, checkpoint, restore into fresh objects, 10 more.
        let b = makeModel(); let optB = makeOptimizer(kind, b); let emaB = ExponentialMovingAverage(b, decay: 0.99)
        var rngB = FCNRandom(seed: 42)
        run(b, optB, emaB, steps: 0..<10, rng: &rngB)
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/ckpt.safetensors"
        try TrainingCheckpoint(parameters: b, optimizer: optB, ema: emaB, step: 10, rng: rngB, info: ["model": "tiny"]).save(to: path)

        let loaded = try TrainingCheckpoint.load(from: path)
        #expect(loaded.step == 10 && loaded.scheduleStep == 10 && loaded.info == ["model": "tiny"])
        let c = [TrainableTensor(name: "fc.weight", value: .zeros([3, 4])), TrainableTensor(name: "fc.bias", value: .zeros([3]))]
        try loaded.restoreModel(into: c)
        let optC = makeOptimizer(kind, c); try optC.load(loaded.optimizer!)
        let emaC = ExponentialMovingAverage(c, decay: 0.99); try emaC.load(loaded.ema)
        var rngC = loaded.rng!
        #expect(rngC == rngB)
        run(c, optC, emaC, steps: loaded.step..<20, rng: &rngC)

        for (x, y) in zip(a, c) { #expect(bitIdentical(x.value, y.value), "\(x.name) differs after resume") }
        let sa = optA.state(), sc = optC.state()
        #expect(sa.step == sc.step && sa.counters == sc.counters && Set(sa.tensors.keys) == Set(sc.tensors.keys))
        for (k, t) in sa.tensors { #expect(bitIdentical(t, sc.tensors[k]!), "optimizer \(k) differs") }
        for (k, t) in emaA.shadows { #expect(bitIdentical(t, emaC.shadows[k]!), "ema \(k) differs") }
        #expect(rngA == rngC)
    }

    @Test func failedWriteLeavesOldFileIntact() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/model.safetensors"
        try TrainingCheckpoint(model: ["w": .ones([2])], step: 1).save(to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try TrainingCheckpoint(model: ["w": .zeros([1000])], step: 2).save(to: path, beforeRename: { throw Boom() })
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        // No temporary file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["model.safetensors"])
        #expect(try TrainingCheckpoint.load(from: path).step == 1)
        // Writing into a missing folder throws an I/O error naming the path.
        #expect(throws: FCNError.self) { try TrainingCheckpoint(model: [:], step: 0).save(to: dir + "/nope/x.safetensors") }
    }

    @Test func loadErrorsArePrecise() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let plain = dir + "/plain.safetensors"
        try saveSafeTensors(["w": .ones([2])], to: plain)
        #expect(throws: FCNError.invalidFormat("'\(plain)' is a safetensors file but not a swift-fcn checkpoint (metadata fcn.format is missing, expected 'swift-fcn.checkpoint')")) {
            try TrainingCheckpoint.load(from: plain)
        }
        let future = dir + "/future.safetensors"
        try saveSafeTensors(["model.w": .ones([2])], metadata: ["fcn.format": "swift-fcn.checkpoint", "fcn.version": "9"], to: future)
        #expect(throws: FCNError.unsupported("checkpoint '\(future)' has version 9; this library reads version 1")) {
            try TrainingCheckpoint.load(from: future)
        }
        let badStep = dir + "/bad.safetensors"
        try saveSafeTensors(["model.w": .ones([2])], metadata: ["fcn.format": "swift-fcn.checkpoint", "fcn.version": "1", "fcn.step": "x", "fcn.schedule_step": "0"], to: badStep)
        #expect(throws: FCNError.invalidFormat("checkpoint '\(badStep)': metadata 'fcn.step' = 'x' is not a non-negative integer")) {
            try TrainingCheckpoint.load(from: badStep)
        }
        // Truncated file.
        let good = dir + "/good.safetensors"
        try TrainingCheckpoint(model: ["w": .ones([64])], step: 3).save(to: good)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        try bytes.prefix(bytes.count - 10).write(to: URL(fileURLWithPath: good))
        #expect(throws: FCNError.self) { try TrainingCheckpoint.load(from: good) }
        // Restoring into parameters with other names or shapes.
        let ck = TrainingCheckpoint(model: ["w": .ones([2])], step: 0)
        #expect(throws: FCNError.mismatch("checkpoint model state: missing [\"v\"], unexpected [\"w\"]")) {
            try ck.restoreModel(into: [TrainableTensor(name: "v", value: .zeros([2]))])
        }
        #expect(throws: FCNError.mismatch("checkpoint model state: 'w' has shape [2], the parameter has [3]")) {
            try ck.restoreModel(into: [TrainableTensor(name: "w", value: .zeros([3]))])
        }
    }
}
