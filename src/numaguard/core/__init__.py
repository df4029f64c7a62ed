"""Pure computations over the model: simulate, rules, planner.  (Host, [Guest]) in, values out."""
