"""Adapters around the dosing core: the command line now; the Telegram bot, storage and reminders next.

Nothing here imports the Telegram stack at module level, so `hemadose recommend` stays light.
"""
