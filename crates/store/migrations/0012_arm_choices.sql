-- The labels of an arm's `choices`, as a JSON array in the order of its calls' stored
-- probabilities, so the report can rank eval items whose label is probably wrong; NULL for
-- arms without `choices` and for arms stored before this column.
ALTER TABLE arms ADD COLUMN choices TEXT;
