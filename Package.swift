// swift-tools-version:6.0
//
// swift-fcn: fully convolutional segmentation networks on the CPU.
//
// Layout (arrows point down only):
//   FCN           Swift library: Tensor, ops, autograd, layers, models, training, IO.
//   CFCNKernels   C hot loops (GEMM microkernels per ISA, packing, im2col). The ISA is
//                 chosen at run time with __builtin_cpu_supports, so no build flag is needed
//                 and the package works as a plain dependency (no unsafe compiler flags).
//   fcn-*         thin executables over the public API.
import PackageDescription

let package = Package(
    name: "swift-fcn",
    products: [
        .library(name: "FCN", targets: ["FCN"]),
        .executable(name: "fcn-demo", targets: ["fcn-demo"]),
        .executable(name: "fcn-bench", targets: ["fcn-bench"]),
        .executable(name: "fcn-train", targets: ["fcn-train"]),
        .executable(name: "fcn-segment", targets: ["fcn-segment"]),
    ],
    targets: [
        // MARK: Kernels (C)
        .target(
            name: "CFCNKernels",
            path: "Sources/CFCNKernels",
            cSettings: [.headerSearchPath("include")]
        ),

        // MARK: Library
        .target(
            name: "FCN",
            dependencies: ["CFCNKernels"],
            path: "Sources/FCN"
        ),

        // MARK: Executables
        .executableTarget(name: "fcn-demo", dependencies: ["FCN"], path: "Sources/fcn-demo"),
        .executableTarget(name: "fcn-bench", dependencies: ["FCN"], path: "Sources/fcn-bench"),
        .executableTarget(name: "fcn-train", dependencies: ["FCN"], path: "Sources/fcn-train"),
        .executableTarget(name: "fcn-segment", dependencies: ["FCN"], path: "Sources/fcn-segment"),
        .executableTarget(name: "fcn-mpi-check", dependencies: ["FCN"], path: "Sources/fcn-mpi-check"),

        // MARK: Tests
        .testTarget(
            name: "FCNTests",
            dependencies: ["FCN"],
            path: "Tests/FCNTests",
            exclude: ["Fixtures"]
        ),
    ]
)
