"""Day-by-day lifecycle simulation: history replayed through production's own code (see :mod:`tradeops.sim.run`)."""
