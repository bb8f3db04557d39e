"""A small stand-in for a production service: it places orders in a loop.

Peeka's demo attaches to it while it runs. It prints ``ready`` once it is
serving, then nothing else.
"""
import random
import threading
import time


class OrderError(Exception):
    """An order that cannot be placed."""


class Inventory:
    def __init__(self):
        self.stock = {"apple": 50, "pear": 30, "plum": 20}
        self.lock = threading.Lock()

    def reserve(self, item, quantity):
        with self.lock:
            if self.stock.get(item, 0) < quantity:
                raise OrderError("not enough %s" % item)
            self.stock[item] -= quantity
            return self.stock[item]

    def restock(self):
        with self.lock:
            for item in self.stock:
                self.stock[item] = min(self.stock[item] + 5, 60)


def price(item, quantity):
    time.sleep(random.random() * 0.002)
    return round({"apple": 0.5, "pear": 0.8, "plum": 1.2}[item] * quantity, 2)


def place_order(inventory, item, quantity):
    left = inventory.reserve(item, quantity)
    return {"item": item, "quantity": quantity, "total": price(item, quantity), "left": left}


def restocker(inventory):
    while True:
        time.sleep(0.5)
        inventory.restock()


def main():
    inventory = Inventory()
    threading.Thread(target=restocker, args=(inventory,), name="restocker", daemon=True).start()
    print("ready", flush=True)
    while True:
        item = random.choice(["apple", "pear", "plum"])
        try:
            place_order(inventory, item, random.randint(1, 6))
        except OrderError:
            pass
        time.sleep(0.01)


if __name__ == "__main__":
    main()
