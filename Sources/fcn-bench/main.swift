// fcn-bench: GFLOP/s of the kernels, layers and whole FCNs (release build).
import FCN

print("fcn-bench: not yet implemented")
