"""The evaluator sandbox: bubblewrap, rlimits, seccomp, the child's protocol, and the unsafe
switch (``batch.run_evaluator`` is the front door)."""
