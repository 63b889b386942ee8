"""The run engine: the state machine, its gates and events, the runner and the steps it runs."""
