"""The dispatch LP stated: problem data, the family table, the numpy builder and the pyomo model."""
