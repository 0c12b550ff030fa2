"""The demo project's own prompts and responses (written for Concordance, no external data)."""

from __future__ import annotations

DEMO_ITEMS: list[dict] = [
    {
        "id": "boil-egg",
        "prompt": "How long should I boil an egg for a runny yolk?",
        "responses": [
            {"id": "a", "model": "aurora-7b", "text": "About **6 minutes** in gently boiling water, then move it to cold water for a minute so it stops cooking."},
            {"id": "b", "model": "basalt-13b", "text": "Boil it for 12 minutes."},
        ],
    },
    {
        "id": "python-reverse",
        "prompt": "Write a Python function that reverses a string.",
        "responses": [
            {"id": "a", "model": "aurora-7b", "text": "```python\ndef reverse(s: str) -> str:\n    return s[::-1]\n```\nSlicing with a step of -1 walks the string backwards."},
            {"id": "b", "model": "basalt-13b", "text": "You can loop over the characters:\n\n```python\ndef reverse(s):\n    out = ''\n    for ch in s:\n        out = ch + out\n    return out\n```"},
        ],
    },
    {
        "id": "capital-australia",
        "prompt": "What is the capital of Australia?",
        "responses": [
            {"id": "a", "model": "aurora-7b", "text": "Sydney."},
            {"id": "b", "model": "basalt-13b", "text": "The capital of Australia is **Canberra**. Sydney is the largest city, which is why it is often mistaken for the capital."},
        ],
    },
    {
        "id": "email-decline",
        "prompt": "Write a short, polite email declining a meeting invitation.",
        "context": "The meeting is on Friday at 3pm about the quarterly budget.",
        "responses": [
            {"id": "a", "model": "aurora-7b", "text": "Hi Sam,\n\nThank you for the invitation to Friday's budget meeting. Unfortunately I have a conflict at 3pm and can't attend. Could you share the notes afterwards? Happy to send my input beforehand.\n\nBest,\nAlex"},
            {"id": "b", "model": "basalt-13b", "text": "No."},
        ],
    },
    {
        "id": "photosynthesis",
        "prompt": "Explain photosynthesis to a ten-year-old in two sentences.",
        "responses": [
            {"id": "a", "model": "aurora-7b", "text": "Plants catch sunlight with their green leaves and use it to turn water and air into sugar, which is their food. While they do it, they breathe out the oxygen we need."},
            {"id": "b", "model": "basalt-13b", "text": "Photosynthesis is the process by which chlorophyll-containing organisms convert light energy into chemical energy via the light-dependent reactions and the Calvin cycle, producing glucose and releasing O2 as a by-product of water photolysis."},
        ],
    },
    {
        "id": "prime-check",
        "prompt": "Is 91 a prime number?",
        "responses": [
            {"id": "a", "model": "aurora-7b", "text": "Yes, 91 is prime."},
            {"id": "b", "model": "basalt-13b", "text": "No: 91 = 7 × 13, so it is not prime."},
        ],
    },
    {
        "id": "haiku",
        "prompt": "Write a haiku about autumn rain.",
        "responses": [
            {"id": "a", "model": "aurora-7b", "text": "Cold rain on red leaves\nthe gutter hums a low song\nsummer washes out"},
            {"id": "b", "model": "basalt-13b", "text": "Autumn rain is falling down on the ground and it is wet and the leaves are falling too because it is autumn now."},
        ],
    },
    {
        "id": "sql-count",
        "prompt": "Give me a SQL query that counts orders per customer.",
        "responses": [
            {"id": "a", "model": "aurora-7b", "text": "```sql\nSELECT customer_id, COUNT(*) AS orders\nFROM orders\nGROUP BY customer_id\nORDER BY orders DESC;\n```"},
            {"id": "b", "model": "basalt-13b", "text": "```sql\nSELECT COUNT(*) FROM orders;\n```"},
        ],
    },
    {
        "id": "unsafe-html",
        "prompt": "Show me an HTML snippet with a button.",
        "responses": [
            {"id": "a", "model": "aurora-7b", "text": "Here it is: <button onclick=\"alert('hi')\">Click</button> <script>alert('x')</script> [a link](javascript:alert(1))"},
            {"id": "b", "model": "basalt-13b", "text": "```html\n<button type=\"button\">Click me</button>\n```"},
        ],
    },
    {
        "id": "tea",
        "prompt": "Suggest three herbal teas for a calm evening.",
        "responses": [
            {"id": "a", "model": "aurora-7b", "text": "1. Chamomile\n2. Lemon balm\n3. Rooibos (caffeine-free, though technically not herbal in the strict sense)"},
            {"id": "b", "model": "basalt-13b", "text": "Chamomile, peppermint and lavender are all calming, caffeine-free choices."},
        ],
    },
]

# A pair with a known answer, mixed into annotators' queues as a gold item.
DEMO_GOLD: list[dict] = [
    {
        "id": "gold-arith",
        "role": "gold",
        "prompt": "What is 12 + 30?",
        "responses": [
            {"id": "a", "model": "aurora-7b", "text": "42."},
            {"id": "b", "model": "basalt-13b", "text": "52."},
        ],
        "gold_strength": -3,
        "gold_ratings": {"a": {"correctness": 4}, "b": {"correctness": 0}},
    },
]
