# Test target: the main thread is always busy running Python.
print("ready", flush=True)
total = 0
while True:
    for i in range(1000):
        total = (total + i * i) % 1000003
