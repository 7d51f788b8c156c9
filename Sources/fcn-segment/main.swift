// fcn-segment: see README.
import FCN

print("fcn-segment: not yet implemented")
