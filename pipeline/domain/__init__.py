"""The domain layer: values and pure rules every other layer may use (spec, ids, slots, gates,
phases, records, the platform protocol, prices, authorization). It imports no other layer."""
