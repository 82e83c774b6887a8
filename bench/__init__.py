"""ffrtmp's benchmarks: one harness, and one script for each side of the farm it measures."""
