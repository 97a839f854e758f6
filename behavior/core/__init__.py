"""Foresight's numeric core: plain modules that take and return DataFrames and arrays, with no database.

Events checked in batches (events), read from files (importers), features at a cutoff (features), models
trained and judged (training, scorers), reasons in words (reasons), uplift (uplift), and who a rule reaches
(outreach). Services and tasks read and write the database around them.
"""
