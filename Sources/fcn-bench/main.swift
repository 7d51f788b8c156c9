// fcn-bench: GFLOP/s of the kernels, layers and whole FCNs (release build).
//
//   swift build -c release --product fcn-bench
//   .build/release/fcn-bench [--threads N] [--json] [--quick] [--filter TEXT]
//
// Rows (add new groups below as functions taking the `Bench`):
//   sgemm S            square SGEMM S x S x S
//   gemm <layer> 500   the im2col GEMM of a VGG16-FCN layer at a 500 x 500 input
//                      (M = Cout, K = Cin * kh * kw, N = Hout * Wout; conv1_1 pad 100,
//                      other 3x3 convs pad 1, 2x2/2 ceil-mode pools, fc6 7x7 valid).
// --quick: a CI smoke run on small sizes that also checks each result against
// sgemmReference and exits non-zero on a mismatch.
import FCN
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let options = Bench.parseOptions(CommandLine.arguments)
Compute.threads = options.threads
let bench = Bench(options: options)
bench.printHeader()
gemmRows(bench)
exit(bench.finish())
