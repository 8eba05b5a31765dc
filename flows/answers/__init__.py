"""How each consultation question reads its answer, by topic; the steps table is flows/steps.py."""
