# Two extension modules, each with its own copy of pygate, in one
# interpreter: a native thread of one calls back into the other, nested.
# The copies act as one pygate: the nested entry counts in the same thread
# record (depth 2, not 1), and the interpreter holds one pygate record
# (one shutdown hook), not two.
import vendored_a
import vendored_b

for outer, inner in ((vendored_a, vendored_b), (vendored_b, vendored_a)):
    depths = []
    outer.start(lambda i: depths.append(inner.nested_depth()), 200)
    assert outer.join() == 200
    assert set(depths) == {2}, "copies apart: nested depths %s" % set(depths)
assert vendored_a.record_keys() == 1, vendored_a.record_keys()
print("two vendored copies of pygate act as one: nested depth 2, one record")
