
from course_lib import data, measure, runtime, train, zoo


def test_int8_deployment_runs_integer_kernels_and_keeps_accuracy(tmp_path):
    model = zoo.load("lenet5")
    test = data.load("mnist", "test").subset(2000)
    fp32, int8, ops = runtime.deploy_int8(model, data.load("mnist", "train").subset(500), tmp_path)
    assert ops["QLinearConv"] == 2 and ops["QGemm"] + ops["QLinearMatMul"] + ops["MatMulInteger"] >= 1
    reference = train.evaluate(model, test).accuracy
    assert abs(train.evaluate(fp32, test).accuracy - reference) < 1e-6
    assert abs(train.evaluate(int8, test).accuracy - reference) < 0.005
    timing = measure.compare_latency({"fp32": fp32, "int8": int8}, batch_size=8, warmup=2, repeats=3)
    assert timing["int8"].median > 0
    assert model.training is False and next(model.parameters()).device.type == "cpu"


def test_cpu_int8_features_is_a_list():
    assert isinstance(runtime.cpu_int8_features(), list)
