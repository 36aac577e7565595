-- Selective human review: the spec's `review:` (target accuracy, delta, calibration share,
-- correction, seed) and `costs.review:` (price and minutes of one review), each as JSON. NULL
-- `review` means the spec had none; NULL `review_costs` the defaults.
ALTER TABLE runs ADD COLUMN review TEXT;
ALTER TABLE runs ADD COLUMN review_costs TEXT;
