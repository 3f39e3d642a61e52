"""A native event source whose worker pool calls Python for each event
(examples/extension/pygate_events.c), and a script that simply ends while
events are still flowing: Python shuts down cleanly, exit status 0."""
import time

import pygate_events

seen = []
pygate_events.watch(seen.append)
time.sleep(0.3)
produced, delivered = pygate_events.counts()
assert seen and len(set(seen)) == len(seen), "no events, or doubled"
assert delivered >= len(seen) and produced >= delivered
print(f"pygate_events: {len(seen)} events from a native thread reached "
      f"Python through a 2-worker pool in 0.3 s; exiting while they flow")
