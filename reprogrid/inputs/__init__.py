"""What a run is built from: its data, its model, the user's own code, the seeding of the
global generators, the library configuration applied and read back, and the RNG trace."""
