"""Job policy: how one request becomes attempts on supervised workers.

The runner (`sidecar.jobs.runner`) holds the one retry loop: each attempt runs the query whole
or split, and the retry ladder (`sidecar.jobs.ladder`) decides which, fed by the up-front
estimate (`sidecar.jobs.estimate`). Split attempts go to the executors behind
`sidecar.jobs.split`. Process supervision lives in `sidecar.workers`, which never imports this
package; the pure planner lives in `sidecar.partition`.
"""
