# Test target: the main thread creates and joins a short-lived thread in a
# tight loop (thread churn), so attaches often catch it inside clone().
import threading, time
def short():
    x = 0
    for i in range(1000):
        x += i
print("ready", flush=True)
while True:
    t = threading.Thread(target=short)
    t.start()
    t.join()
