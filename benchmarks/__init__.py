"""`make bench`: throughput, CPU and memory of the sender against a local SES v2 stand-in.

`python -m benchmarks.run` starts the stand-in in its own process, runs each scenario in a child process of
its own (so CPU and peak RSS are the client's alone) and prints one table with a pass/fail mark per target.
"""
