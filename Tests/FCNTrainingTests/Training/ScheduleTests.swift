// Schedules vs torch.optim.lr_scheduler (lr read before each of 40 steps; fixture from
// Fixtures/gen_training.py) and the TensorFlow exponential_decay example of seed 003.
// Tolerance 1e-6 relative: closed forms in Double vs torch's chained products.
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport

@Suite struct ScheduleTests {
    func schedule(_ c: FixtureCase) -> any LearningRateSchedule {
        let base = Float(number(c, "base")!)
        switch c.string("kind") {
        case "step": return StepLR(base: base, stepSize: c.int("step_size"), gamma: number(c, "gamma")!)
        case "multistep": return MultiStepLR(base: base, milestones: intArray(c, "milestones")!, gamma: number(c, "gamma")!)
        case "exponential": return ExponentialDecay(base: base, decayRate: number(c, "gamma")!, decaySteps: 1, staircase: true)
        case "poly", "poly_lambda": return PolyLR(base: base, maxSteps: c.int("max"), power: number(c, "power")!)
        case "cosine": return CosineLR(base: base, maxSteps: c.int("max"), minLR: Float(number(c, "min")!))
        case "warmup_poly":
            return LinearWarmup(PolyLR(base: base, maxSteps: c.int("max"), power: number(c, "power")!),
                                warmupSteps: c.int("warmup"), startFactor: number(c, "start")!)
        case "warmup_step":
            return LinearWarmup(StepLR(base: base, stepSize: c.int("step_size"), gamma: number(c, "gamma")!),
                                warmupSteps: c.int("warmup"), startFactor: number(c, "start")!)
        default: fatalError("unknown schedule \(c)")
        }
    }

    @Test(arguments: loadFixture("training_schedule"))
    func matchesTorchScheduler(_ c: FixtureCase) {
        let s = schedule(c)
        let expected = c.tensor("lrs").scalars
        // Cosine: torch's form is periodic past T_max; ours holds minLR, so compare up to T_max.
        let n = c.string("kind") == "cosine" ? c.int("max") + 1 : expected.count
        let got = (0..<n).map { s.lr(at: $0) }
        expectClose(Tensor(shape: [n], scalars: got), Tensor(shape: [n], scalars: Array(expected.prefix(n))), tolerance: 1e-6, "\(c)")
    }

    /// Seed 003: LEARNING_RATE_BASE 0.005, LEARNING_RATE_DECAY 0.99, decay every
    /// 55000 / 100 = 550 steps (one MNIST epoch of batch 100), staircase, 50000 steps.
    @Test func exponentialDecayReproducesSeed() {
        let lr = ExponentialDecay(base: 0.005, decayRate: 0.99, decaySteps: 55000.0 / 100, staircase: true)
        let cases: [(Int, Double)] = [(0, 0.005), (549, 0.005), (550, 0.00495), (1100, 0.0049005),
                                      (10000, 0.004172568807250437), (49999, 0.0020236598633916188)]
        for (step, want) in cases {
            #expect(abs(Double(lr.lr(at: step)) - want) <= want * 1e-6, "step \(step): \(lr.lr(at: step)) vs \(want)")
        }
        let smooth = ExponentialDecay(base: 0.005, decayRate: 0.99, decaySteps: 550)
        #expect(abs(Double(smooth.lr(at: 275)) - 0.0049749371855331) < 1e-9)
    }

    @Test func constantAndClamping() {
        #expect(ConstantLR(1e-10).lr(at: 123456) == 1e-10)
        #expect(PolyLR(base: 0.01, maxSteps: 10).lr(at: 10) == 0)
        #expect(PolyLR(base: 0.01, maxSteps: 10).lr(at: 50) == 0)
        #expect(CosineLR(base: 0.1, maxSteps: 10, minLR: 0.01).lr(at: 99) == 0.01)
        #expect(LinearWarmup(ConstantLR(1), warmupSteps: 0).lr(at: 0) == 1)
    }
}
