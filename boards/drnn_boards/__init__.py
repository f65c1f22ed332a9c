"""Board top-levels, the host link and the build flows (ULX3S-85F, Arty Z7-20)."""
