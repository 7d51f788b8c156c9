// fcn-demo: runs the library end to end on generated data.
import FCN

let x = Tensor.randn([1, 3, 8, 8], seed: 0)
print("input", x.shape)
