// fcn-train: see README.
import FCN

print("fcn-train: not yet implemented")
