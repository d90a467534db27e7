# No ecosystem block anywhere in the model.
zone "sales" {}
