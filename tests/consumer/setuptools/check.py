# Imports the vendored extension, lets its native thread call back 1000
# times, and checks every call arrived.
import vendored

seen = []
vendored.start(seen.append, 1000)
done = vendored.join()
assert done == 1000 and seen == list(range(1000)), (done, len(seen))
print("setuptools extension with pygate's single file: 1000 calls")
