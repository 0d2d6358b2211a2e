"""The decoding core: the decode loop, the branching sampler, exact enumeration, teacher forcing, prompt encoding."""
