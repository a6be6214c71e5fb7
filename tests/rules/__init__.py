"""Pure release rules (``pipeline.rules``): tags, the plan, labels, references."""
