"""A native event source whose worker pool calls Python for each event
(examples/extension/pygate_events.c), and a script that simply ends while
events are still flowing: Python shuts down cleanly, exit status 0."""
import time

import pygate_events

seen = []
pygate_events.watch(seen.append)
time.sleep(0.3)
# Events keep arriving while this runs: the list first, then the counts,
# which count an event before it reaches the list (as produced before it
# is submitted, as delivered before the callback runs).
events = list(seen)
produced, delivered = pygate_events.counts()
assert events and len(set(events)) == len(events), "no events, or doubled"
assert produced >= delivered >= len(events), (produced, delivered, len(events))
print(f"pygate_events: {len(events)} events from a native thread reached "
      f"Python through a 2-worker pool in 0.3 s; exiting while they flow")
