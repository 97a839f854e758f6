from django.dispatch import Signal

# Sent with `run` (a ScoringRun) when every customer has fresh scores; campaigns and support listen.
scoring_finished = Signal()
