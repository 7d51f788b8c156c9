import Testing
@testable import FCNCore
import FCNTestSupport

/// The error rule (see Sources/FCN/Tensor/Errors.swift): misuse stops the program with a
/// message naming the op. These exit tests run the misuse in a child process.
@Suite struct ErrorRuleTests {
    @Test func scalarCountMismatchNamesTheOp() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor(shape: [2, 2], scalars: [1, 2, 3])
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("Tensor(shape:scalars:): shape [2, 2] holds 4 elements but 3 scalars were given"))
    }
}
