// The umbrella module: `import FCN` brings every layer of the library.
//
//   FCNInference  FCNTraining     segmenting images | training and evaluating
//        \            /
//         FCNModels               layers, model families, model descriptions, model files
//         /       \
//     FCNIO        |              image codecs, safetensors (plain buffers and tensors)
//         \       /
//         FCNCore                 Tensor, autograd, ops, compute
//            |
//       CFCNKernels (C)           microkernels per ISA, chosen at run time
//
// Each module can be imported on its own; arrows point down only (the package manifest
// lets a module import only the ones below it).
@_exported import FCNCore
@_exported import FCNIO
@_exported import FCNModels
@_exported import FCNTraining
@_exported import FCNInference
