"""The dialogue file format, in one place: bot/replay.py runs it, `hemadose replay --help` prints it.

No imports: the command line shows it without loading the Telegram stack.
"""

FORMAT = """\
A dialogue file (YAML):

    title: Romiplostim, new patient, increase
    today: 2026-11-22            # the clock of the replay (noon UTC that day)
    user: 1001                   # who speaks unless a step says `as: <id>`
    allowed: [1001, 1002]        # the access list (default: the users of the dialogue)
    time_zone: UTC               # the bot's default zone (default UTC)
    steps:
      - send: /new               # a message or command
        expect: {contains: Which drug?, buttons: [Romiplostim]}
      - press: Romiplostim       # a button of the newest message that has it (by its label)
      - restart: true            # a new Application on the same database
      - as: 1002
        send: /patients
        expect: {not_contains: RX-12}
      - advance: 25h             # the clock moves on (d, h, m); reminders due meanwhile are sent
                                 # as a running bot would, each at its time
        expect: {contains: Dose reminder, buttons: [Taken]}
      - advance: 3d
        offline: true            # the bot was down: one run at the end, as at a restart
      - upload: {sent: RX-12-2026-11-22-record.csv}   # the user sends a file the bot sent earlier
      - upload: {filename: labs.csv, content: "patient,kind,..."}   # or one written here

Step kinds: send, press, upload, advance (with offline), restart; `as` names the user of a step.

`expect` (a mapping, or a list of them) checks every reply to its step:
  contains / not_contains   text or list of texts, in any reply (or in none)
  equals                    the whole text of the last reply
  matches                   a regular expression searched in the replies
  buttons                   button labels present
  replies                   how many replies
  documents                 file names the bot sent (sendDocument; the reply's text is the caption)
  file_contains             text or list of texts, in any file sent
  photos                    how many photos (sendPhoto: a trend chart) the step sent, each a PNG;
                            a photo's caption is its text (contains, equals, ... check it)
  card                      the WHOLE text of the recommendation card among the replies (a list when
                            the step sends several), compared exactly; a mismatch shows a unified diff

A recommendation card is a reply with a "Rule: " line and a "Why?" button. Every step that replies
with one must assert it whole (`card`, or `equals` when the card is the last reply): the dialogue
tests fail otherwise. `hemadose replay --bless FILE` writes the actual cards into the file (and drops
the `contains` fragments of those steps that the card now covers or that no longer match);
`hemadose replay --show FILE` prints each exchange. The bot's error handler fails the replay if a
handler raises.
"""
