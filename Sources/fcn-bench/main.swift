// fcn-bench: GFLOP/s of the kernels, layers and whole FCNs (release build).
//
//   swift build -c release --product fcn-bench
//   .build/release/fcn-bench [--threads N] [--json] [--quick] [--filter TEXT] [--weight-cache MB]
//                           [--precision bf16|f32]
//
// Rows (add new groups below as functions taking the `Bench`):
//   sgemm S            square SGEMM S x S x S
//   gemm <layer> 500   the im2col GEMM of a VGG16-FCN layer at a 500 x 500 input
//                      (M = Cout, K = Cin * kh * kw, N = Hout * Wout; conv1_1 pad 100,
//                      other 3x3 convs pad 1, 2x2/2 ceil-mode pools, fc6 7x7 valid).
//   conv <layer> 500   conv2d of every distinct VGG16-FCN convolution at a 500 x 500 input
//                      (bias, fused ReLU where the net has one; under withoutGrad)
//   deconv <layer> 500 the bilinear upsampling layers (upscore2, upscore_pool4, upscore8,
//                      upscore, upscore16) at their 500 x 500 input sizes
//   pool pool1 500     2x2 stride-2 ceil-mode max pool of conv1_2's output
//   fcn{32,16,8}s forward {224,500}   whole network, 21 classes, full width, random weights,
//                      eval mode, withoutGrad
//   fcn8s train step 256   forward + softmax cross-entropy + backward, batch 1, train mode
//   resnet34-fcn8s forward 500, fcn_resnet50 forward 520, fcn_resnet101 forward 520
//                      the ResNet FCNs as fcn-segment runs them (batch norms folded, scores
//                      resized to the input), 21 classes, random weights; each followed by
//                      the share of its time per kind of op (OpProfiler)
//   fcn_resnet50 train step 256   torchvision's FCN in train mode (batch statistics), batch
//                      1, 21 classes: forward, softmax cross-entropy, backward
// GFLOP counts: 2 * multiply-adds of the convolution layers (LayerRows.swift).
// --weight-cache MB (default 1024): the packed-weight cache (Compute.weightCacheMegabytes), so
// repeated calls read their weights packed, as onnxruntime does after loading; 0 turns it off.
// --quick: a CI smoke run on small sizes that checks each GEMM, convolution, transpose
// convolution and pool against the naive references (sgemmReference, conv2dReference, ...)
// and exits non-zero on a mismatch.
import FCNTools
import FCN
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let options = Bench.parseOptions(CommandLine.arguments)
Compute.threads = options.threads
Compute.weightCacheMegabytes = options.weightCacheMB
Compute.precision = options.precision
let bench = Bench(options: options)
bench.printHeader()
gemmRows(bench)
layerRows(bench)
exit(bench.finish())
