"""What generated data looks like: the categories, notes and names it draws from, and the
shares of keys without a budget, with a zero budget and of months without spending.
"""

# The standard category set: the seed's five first (same descriptions and colors), then the
# rest. weight = expenses per hundred; low/high bound each expense's amount in INR.
CATEGORIES = (
    # name, description, color, weight, low, high
    ("Food", "Restaurants, groceries, beverages", "#FF6B6B", 32, 40, 2500),
    ("Transport", "Taxi, bus, metro, fuel", "#4ECDC4", 18, 20, 1500),
    ("Rent", "Monthly rent", "#556270", 2, 8000, 45000),
    ("Shopping", "Clothes, gadgets", "#C7F464", 12, 200, 15000),
    ("Entertainment", "Movies, subscriptions", "#95E1D3", 10, 100, 4000),
    ("Utilities", "Electricity, water, phone, internet", "#F7B32B", 8, 150, 6000),
    ("Health", "Doctor, pharmacy, insurance", "#E84A5F", 7, 100, 12000),
    ("Travel", "Flights, trains, hotels", "#6C5B7B", 4, 800, 60000),
    ("Education", "Courses, books, fees", "#355C7D", 7, 200, 20000),
)

# Notes per category. Some carry commas, double quotes, a newline and emoji on purpose:
# every export has to round-trip them.
NOTES = {
    "Food": (
        "Lunch at cafe",
        "Weekly groceries",
        "Dinner with friends, split 3 ways",
        "Chai ☕ and samosa",
        "Biryani 🍛 delivery",
        "Fruit & vegetables",
    ),
    "Transport": ("Taxi to office", "Metro card top-up", "Auto rickshaw", "Petrol, full tank"),
    "Rent": ("Monthly rent", "Rent – flat 4B", "Maintenance charges"),
    "Shopping": (
        "New headphones",
        'Said "never again", bought it anyway',
        "Birthday gift 🎁 for Priya",
        "Kurta, 2 pieces",
    ),
    "Entertainment": (
        'Movie "Inception" re-release',
        "Streaming subscription",
        "Concert 🎶 tickets",
    ),
    "Utilities": ("Electricity bill\nApril + May", "Mobile recharge", "Broadband, 100 Mbps"),
    "Health": ("Pharmacy: paracetamol, ORS", "Doctor visit", "Gym membership 💪"),
    "Travel": ("Flight BLR→DEL", "Train tickets, 3AC", 'Hotel "Sea View", 2 nights'),
    "Education": ("Online course (Python)", "Books", "Exam fee"),
}
# Share of expenses without a note (NULL), in percent.
NULL_NOTE_PERCENT = 12

FIRST_NAMES = (
    "Aarav",
    "Aditi",
    "Aman",
    "Ananya",
    "Arjun",
    "Diya",
    "Farhan",
    "Ishaan",
    "Kavya",
    "Meera",
    "Neha",
    "Nikhil",
    "Priya",
    "Rahul",
    "Riya",
    "Rohan",
    "Saanvi",
    "Sanjay",
    "Tara",
    "Vikram",
)
LAST_NAMES = (
    "Agarwal",
    "Bose",
    "Chopra",
    "Das",
    "Fernandes",
    "Gupta",
    "Iyer",
    "Joshi",
    "Khan",
    "Kumar",
    "Menon",
    "Nair",
    "Patel",
    "Pillai",
    "Rao",
    "Reddy",
    "Sharma",
    "Singh",
    "Verma",
    "Yadav",
)

# Percent of user/category/month keys without a budget, and with a budget of 0.
MISSING_BUDGET_PERCENT = 6
ZERO_BUDGET_PERCENT = 2
# Percent of user-months a user spends nothing in (on top of the guaranteed gaps).
SKIPPED_MONTH_PERCENT = 3
