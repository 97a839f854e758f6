from django.dispatch import Signal

# Sent with `run` (a ScoringRun) when every customer has fresh scores; campaigns and support listen.
scoring_finished = Signal()

# Sent with `external_ids` when customers were written in bulk, past the model's own save and delete signals;
# campaigns listens (what a customer is shown hangs on their consent).
customers_changed = Signal()
