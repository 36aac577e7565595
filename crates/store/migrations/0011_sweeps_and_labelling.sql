-- Learning curves and label-noise sweeps (`train_sizes`, `few_shot_sizes`, `label_noise`):
-- each arm's place on its family's sweep, as JSON (`domain::SweepPoint`: family, examples,
-- label_noise); NULL for prompt arms outside any sweep and for arms stored before sweeps.
ALTER TABLE arms ADD COLUMN sweep TEXT;

-- `costs.staff.labelling_minutes_per_example`; NULL when the spec did not declare it (the
-- report then uses `data_prep_hours`).
ALTER TABLE runs ADD COLUMN labelling_minutes_per_example REAL;
