// swift-tools-version:6.0
//
// swift-fcn: fully convolutional segmentation networks on the CPU.
//
// Modules by layer; a target lists only the targets below it, so an arrow pointing up
// does not compile (`.ci/check-layers` also checks every `import`):
//
//   fcn-segment fcn-train fcn-convert fcn-demo fcn-bench   executables: parse, call, print
//                   FCNTools                  (target, not a product) arguments, console,
//                      |                      SIGINT, plots, the commands' options
//                     FCN                     umbrella product: re-exports the modules below
//          FCNInference   FCNTraining         segmenting images | training, data, metrics
//                  \        /
//                  FCNModels                  layers, model families, descriptions, files
//                  /       |
//               FCNIO      |                  codecs and safetensors: buffers in and out
//                  \       |
//                  FCNCore                    Tensor, autograd, ops, compute
//                     |
//                 CFCNKernels                 C microkernels per ISA, chosen at run time with
//                                             __builtin_cpu_supports (no build flags, so the
//                                             package works as a plain dependency)
import PackageDescription

let package = Package(
    name: "swift-fcn",
    products: [
        .library(name: "FCN", targets: ["FCN"]),
        .executable(name: "fcn-demo", targets: ["fcn-demo"]),
        .executable(name: "fcn-bench", targets: ["fcn-bench"]),
        .executable(name: "fcn-train", targets: ["fcn-train"]),
        .executable(name: "fcn-segment", targets: ["fcn-segment"]),
        .executable(name: "fcn-convert", targets: ["fcn-convert"]),
    ],
    targets: [
        // MARK: Kernels (C)
        .target(name: "CFCNKernels", path: "Sources/CFCNKernels", cSettings: [.headerSearchPath("include")]),

        // MARK: Library, bottom to top
        .target(name: "FCNCore", dependencies: ["CFCNKernels"], path: "Sources/FCNCore"),
        .target(name: "FCNIO", dependencies: ["FCNCore"], path: "Sources/FCNIO"),
        .target(name: "FCNModels", dependencies: ["FCNCore", "FCNIO"], path: "Sources/FCNModels"),
        .target(name: "FCNTraining", dependencies: ["CFCNKernels", "FCNCore", "FCNIO", "FCNModels"], path: "Sources/FCNTraining"),
        .target(name: "FCNInference", dependencies: ["FCNCore", "FCNIO", "FCNModels"], path: "Sources/FCNInference"),
        .target(name: "FCN", dependencies: ["FCNCore", "FCNIO", "FCNModels", "FCNTraining", "FCNInference"],
                path: "Sources/FCN"),

        // MARK: Command-line support (not a product: the executables and their tests)
        .target(name: "FCNTools", dependencies: ["FCN"], path: "Sources/FCNTools"),

        // MARK: Executables
        .executableTarget(name: "fcn-demo", dependencies: ["FCNTools"], path: "Sources/fcn-demo"),
        .executableTarget(name: "fcn-bench", dependencies: ["FCNTools"], path: "Sources/fcn-bench"),
        .executableTarget(name: "fcn-train", dependencies: ["FCNTools"], path: "Sources/fcn-train"),
        .executableTarget(name: "fcn-segment", dependencies: ["FCNTools"], path: "Sources/fcn-segment"),
        .executableTarget(name: "fcn-convert", dependencies: ["FCNTools"], path: "Sources/fcn-convert"),
        .executableTarget(name: "fcn-mpi-check", dependencies: ["FCNTools"], path: "Sources/fcn-mpi-check"),

        // MARK: Tests (one target per module, one shared support target)
        .target(name: "FCNTestSupport", dependencies: ["FCNCore", "FCNIO", "FCNModels"], path: "Tests/FCNTestSupport"),
        .testTarget(name: "FCNCoreTests", dependencies: ["FCNCore", "FCNTestSupport", "CFCNKernels"],
                    path: "Tests/FCNCoreTests"),
        .testTarget(name: "FCNIOTests", dependencies: ["FCNIO", "FCNModels", "FCNTestSupport"], path: "Tests/FCNIOTests"),
        .testTarget(name: "FCNModelsTests", dependencies: ["FCNModels", "FCNTestSupport"], path: "Tests/FCNModelsTests"),
        .testTarget(name: "FCNTrainingTests", dependencies: ["FCNTraining", "FCNTestSupport"],
                    path: "Tests/FCNTrainingTests"),
        .testTarget(name: "FCNInferenceTests", dependencies: ["FCNInference", "FCNTestSupport"],
                    path: "Tests/FCNInferenceTests"),
        .testTarget(name: "FCNTests", dependencies: ["FCN", "FCNTestSupport"], path: "Tests/FCNTests"),
        .testTarget(name: "FCNToolsTests", dependencies: ["FCNTools", "FCNTestSupport"], path: "Tests/FCNToolsTests"),
    ]
)
