from django.dispatch import Signal

# Sent with `campaign` and `coupons` (saved, with their codes) inside the transaction that minted them, so
# that a shop framework's own codes are made with them or not at all (the Oscar connector's vouchers).
coupons_minted = Signal()
