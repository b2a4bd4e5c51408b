/* Filled in by its issue. */
typedef int podsim_empty_unit;
