// Layers against torch.nn with the same weights (fixtures by gen_safetensors.py):
//   m = nn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias); y = m(x)
//   saved: weight, bias, input, output, and sum(p.numel() for p in m.parameters())
// and likewise ConvTranspose2d, Linear, BatchNorm2d (eval, train with momentum 0.1 and
// cumulative), MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, and a Sequential's state_dict keys.
// Tolerance 1e-5 relative to the output scale: float32 sums of up to a few hundred terms
// accumulated in a different order than PyTorch.
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

private func layerCaseSize2(_ c: FixtureCase, _ key: String) -> Size2 {
    let a = c.ints(key)
    return a.count == 1 ? Size2(a[0]) : Size2(a[0], a[1])
}

private func layerCasePadding(_ c: FixtureCase) -> Padding {
    let p = layerCaseSize2(c, "padding")
    return .explicit(top: p.h, bottom: p.h, left: p.w, right: p.w)
}

@Suite struct LayerFixtureTests {
    @Test(arguments: loadFixture("layers"))
    func matchesTorch(_ c: FixtureCase) throws {
        let tol: Float = 1e-5
        switch c.string("layer") {
        case "conv2d":
            let bias = c.bool("bias")
            let m = Conv2d(inChannels: c.int("cin"), outChannels: c.int("cout"), kernelSize: layerCaseSize2(c, "k"),
                           stride: layerCaseSize2(c, "stride"), padding: layerCasePadding(c), dilation: layerCaseSize2(c, "dilation"),
                           groups: c.int("groups"), bias: bias, seed: 1)
            #expect(m.parameterCount == c.int("params"))
            var state = ["weight": c.tensor("weight")]
            if bias { state["bias"] = c.tensor("bias") }
            try m.loadStateDict(state)
            expectClose(m(c.tensor("input")), c.tensor("output"), tolerance: tol, "\(c)")
            let direct = Conv2d(weight: c.tensor("weight"), bias: bias ? c.tensor("bias") : nil, stride: layerCaseSize2(c, "stride"),
                                padding: layerCasePadding(c), dilation: layerCaseSize2(c, "dilation"), groups: c.int("groups"))
            #expect(direct.inChannels == c.int("cin") && direct.outChannels == c.int("cout") && direct.kernelSize == layerCaseSize2(c, "k"))
        case "conv_transpose2d":
            let bias = c.bool("bias")
            let m = ConvTranspose2d(inChannels: c.int("cin"), outChannels: c.int("cout"), kernelSize: layerCaseSize2(c, "k"),
                                    stride: layerCaseSize2(c, "stride"), padding: layerCasePadding(c), outputPadding: layerCaseSize2(c, "output_padding"),
                                    dilation: layerCaseSize2(c, "dilation"), groups: c.int("groups"), bias: bias, seed: 1)
            #expect(m.parameterCount == c.int("params"))
            var state = ["weight": c.tensor("weight")]
            if bias { state["bias"] = c.tensor("bias") }
            try m.loadStateDict(state)
            expectClose(m(c.tensor("input")), c.tensor("output"), tolerance: tol, "\(c)")
        case "linear":
            let bias = c.bool("bias")
            let m = Linear(inFeatures: c.int("fin"), outFeatures: c.int("fout"), bias: bias, seed: 1)
            #expect(m.parameterCount == c.int("params"))
            var state = ["weight": c.tensor("weight")]
            if bias { state["bias"] = c.tensor("bias") }
            try m.loadStateDict(state)
            expectClose(m(c.tensor("input")), c.tensor("output"), tolerance: tol, "\(c)")
        case "batchnorm2d":
            let mom = c.double("momentum")
            let m = BatchNorm2d(5, momentum: mom < 0 ? nil : Float(mom))
            #expect(m.parameterCount == c.int("params"))
            try m.loadStateDict(["weight": c.tensor("weight"), "bias": c.tensor("bias"), "running_mean": c.tensor("running_mean"),
                                 "running_var": c.tensor("running_var"), "num_batches_tracked": Tensor(3)])
            m.train(c.bool("training"))
            expectClose(m(c.tensor("input")), c.tensor("output"), tolerance: tol, "\(c)")
            expectClose(m.runningMean!.value, c.tensor("new_running_mean"), tolerance: tol, "\(c) running_mean")
            expectClose(m.runningVar!.value, c.tensor("new_running_var"), tolerance: tol, "\(c) running_var")
            #expect(m.numBatchesTracked!.value.item == Float(c.int("num_batches_tracked")))
        case "maxpool2d":
            let m = MaxPool2d(kernel: layerCaseSize2(c, "k"), stride: layerCaseSize2(c, "stride"), padding: layerCaseSize2(c, "padding"), ceilMode: c.bool("ceil"))
            #expect(m.parameterCount == 0)
            expectClose(m(c.tensor("input")), c.tensor("output"), tolerance: 0, "\(c)")
        case "avgpool2d":
            let m = AvgPool2d(kernel: layerCaseSize2(c, "k"), stride: layerCaseSize2(c, "stride"), padding: layerCaseSize2(c, "padding"),
                              ceilMode: c.bool("ceil"), countIncludePad: c.bool("count_include_pad"))
            expectClose(m(c.tensor("input")), c.tensor("output"), tolerance: tol, "\(c)")
        case "adaptiveavgpool2d":
            let m = AdaptiveAvgPool2d(outputSize: layerCaseSize2(c, "out"))
            expectClose(m(c.tensor("input")), c.tensor("output"), tolerance: tol, "\(c)")
        case "sequential_count":
            let seq = Sequential(Conv2d(inChannels: 3, outChannels: 8, kernelSize: 3), BatchNorm2d(8), ReLU(),
                                 Conv2d(inChannels: 8, outChannels: 4, kernelSize: 1, bias: false), Dropout(p: 0.5),
                                 Linear(inFeatures: 10, outFeatures: 2))
            #expect(seq.parameterCount == c.int("params"))
            guard case .array(let keys)? = c.value("state_keys") else { Issue.record("no state_keys"); return }
            #expect(seq.namedState().map(\.0) == keys.map { if case .string(let s) = $0 { return s }; return "?" })
        default:
            Issue.record("unknown layer in \(c)")
        }
    }

    @Test func fixtureHasEveryLayer() {
        let kinds = Set(loadFixture("layers").map { $0.string("layer") })
        #expect(kinds == ["conv2d", "conv_transpose2d", "linear", "batchnorm2d", "maxpool2d", "avgpool2d",
                          "adaptiveavgpool2d", "sequential_count"])
    }
}
